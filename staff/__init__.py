"""The health staff's own tool, on the family-doctor team's machine, never part of the cloud.

It holds what the cloud must never hold: the district key and the team's resident roster (card
numbers and names, a local file). It calls the cloud's health-role API with pseudonyms only and
maps them to names here (`roster.py`, `client.py`, `view.py`; commands `gumei health worklist |
contacted | close | lookup`). It may import `contract` and `runtime`; `cloud` never imports it.
"""
