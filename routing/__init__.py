"""Routing: a reported URL → canonical URL → addresses → country/ASN → responsible member.

Pure logic plus thin adapters (DNS, GeoIP). Never imports ``exchange``.
"""
