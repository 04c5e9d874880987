"""The pages of ``ihx web``, one module per family; each gives its ``routes(web)``."""
