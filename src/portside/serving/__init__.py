"""Serving HTTP: a lean supervisor process and uvicorn worker processes with sendfile for blobs."""
