"""Side-by-side benchmark of Portside, CNCF Distribution and nginx (see bench/README.md)."""
