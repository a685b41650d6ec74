"""One module per command; each defines `main` with Annotated parameters, registered in app.py."""
