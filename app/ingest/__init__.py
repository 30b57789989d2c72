"""Ingest: a sender's email parts in, the link catalog and per-recipient emails out.

``links`` decides what a link is and where it leads, ``rewriting`` cuts a part around every
tracked ``href``, ``campaigns`` stores campaigns and personalizes them.
"""
