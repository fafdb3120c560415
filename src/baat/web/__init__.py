"""The web app served by ``baat app``: chats, safety numbers and the privacy dashboard in
the browser, drawn from the local client in the same process (see ``docs/WEB.md``).

``app`` builds the ASGI app, ``guard`` decides who may use it, ``runtime`` owns the one
``Client``, ``api`` and ``privacy_api`` are the JSON routes, ``privacy_proxy`` holds every
call to the server's privacy API, ``static/`` the HTML, CSS and JavaScript.
"""
