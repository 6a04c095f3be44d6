"""Domain services of the registry: blobs, uploads, manifests and listings.

They combine the blob store (bytes) and the metadata queries (what is where) and raise the
domain errors of `portside.errors`; the HTTP layers translate those for their clients.
"""
