"""Waybill notifier: outbound webhooks (Standard Webhooks) and customer notifications."""
