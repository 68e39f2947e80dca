"""The web page (``nst mode=serve``): a JSON API over the library and a page that uses only it.

- ``catalog``: the models a client may name (shipped + a folder), loaded once and kept;
- ``uploads``: an uploaded file through the project's decoder guards, errors as HTTP statuses;
- ``jobs``: the bounded worker (a full queue is a 503) and the Gatys jobs a page follows;
- ``app``: the FastAPI application, its host check and byte limit; ``static/``: the page.
The API is documented in docs/serve.md.
"""
