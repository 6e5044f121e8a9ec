"""Redraft's collaboration server: rooms of pycrdt documents over the y-websocket protocol."""
