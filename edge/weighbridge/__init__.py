"""The weighbridge (truck scale) gateway: XK3190 frames, stable weight, tickets (docs/weighbridge.md)."""
