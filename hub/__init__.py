"""labdeck hub: configuration as code, authentication, templates and service wiring."""
