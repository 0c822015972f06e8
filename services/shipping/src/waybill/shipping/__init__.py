"""Waybill shipping service: shipments, delivery agents, timed offers and proof of delivery."""
