"""Waybill monitor: read models of every topic, dead letters, health roll-up."""
