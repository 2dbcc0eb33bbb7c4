"""Notebook → read-only HTML (nbconvert), and the headers that keep it inert.

Notebook outputs are untrusted: rendered HTML is sanitized by nbconvert and
served with a ``Content-Security-Policy`` that forbids scripts, network
fetches and forms and puts the page in a ``sandbox`` (an opaque origin), so
nothing in a shared notebook can act with the viewer's hub session.
"""

from __future__ import annotations

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:; form-action 'none'; frame-ancestors 'self'; sandbox"

SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "private, no-store",
}


def render_html(body: bytes, title: str) -> str:
    """The notebook in ``body`` as a standalone, sanitized HTML page."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.reads(body.decode("utf-8"), as_version=4)
    nb.metadata.setdefault("title", title)
    exporter = HTMLExporter(template_name="lab", sanitize_html=True, embed_images=True, exclude_input_prompt=False)
    html, _ = exporter.from_notebook_node(nb)
    return html
