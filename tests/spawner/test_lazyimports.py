"""rfc3987_syntax is not imported when jsonschema is, and "iri" is still validated exactly as before."""

import subprocess
import sys

CODE = r"""
import sys
from labdeck.spawner.userserver import lazyimports
assert lazyimports.install()
import jsonschema, jupyter_events  # what every jupyter-server imports
real = [m for m in sys.modules if m.startswith(("rfc3987_syntax.", "lark"))]
print("before", real)
checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
assert "iri" in checker.checkers, "jsonschema must still register the iri checkers"
v = jsonschema.Draft202012Validator({"format": "iri"}, format_checker=checker)
print("valid", v.is_valid("https://例え.テスト/パス?q=1"), v.is_valid("http://a b"), v.is_valid("no scheme"))
print("after", "rfc3987_syntax.syntax_helpers" in sys.modules)
"""


def test_lazy_then_identical_answers():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=120, check=True).stdout
    assert "before []" in out
    assert "valid True False False" in out
    assert "after True" in out
    # the same answers without labdeck's stand-in
    plain = CODE.replace("assert lazyimports.install()", "")
    out2 = subprocess.run([sys.executable, "-c", plain], capture_output=True, text=True, timeout=120, check=True).stdout
    assert "valid True False False" in out2
