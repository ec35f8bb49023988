"""The web console: server-rendered pages over the same API, made live by a little plain JavaScript.

Pages (``pages.py``) render what the API answers, so a page is useful before its script runs; the
scripts in ``static/`` then follow the API's SSE routes (``EventSource`` resumes by itself with
``Last-Event-ID``) and poll the status routes no faster than once a second. Everything is in the
package: no build step, no CDN, nothing fetched at run time.
"""
