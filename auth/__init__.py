"""Auth: node keys (Ed25519), signed envelopes and receipts, the signed network manifest.

Never imports ``exchange``.
"""
