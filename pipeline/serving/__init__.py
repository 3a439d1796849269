"""Serving the exported SavedModels over HTTP, in TensorFlow Serving's REST dialect.

``repository`` finds and loads the newest version of each model and notices new ones;
``protocol`` turns the REST API's JSON into tensors and back; ``batching`` merges concurrent
requests into one call; ``app`` puts them behind an ASGI application (Starlette, run by
uvicorn) with the page at ``/``; ``load`` measures it under N concurrent clients.
"""
