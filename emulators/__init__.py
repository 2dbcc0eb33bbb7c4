"""Local emulators of the cloud services, used by the embedded default and the tests."""
