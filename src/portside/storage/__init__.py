"""Content-addressed blob stores. `ports.BlobStore` is the contract; `filesystem` implements it."""
