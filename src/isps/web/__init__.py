"""Server-rendered web app (Jinja2 + htmx), in English and Urdu."""
