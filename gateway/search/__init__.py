"""Search: what is indexed from each resource at write time, and how search
criteria are parsed. Today this covers the token parameters that conditional
create and update need (``_id`` and ``identifier``); the full search engine
grows here.
"""
