"""The hub's pure core: it decides, it never does I/O.

Facts come in as events (:mod:`hub.core.events`), decisions go out as intents
(:mod:`hub.core.intents`). Time is always an argument. Nothing here imports a
third-party package or another part of the project.
"""
