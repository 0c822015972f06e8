"""The HTTP kit: app factory, problem+json errors, limits, health, pagination.

Import from the submodules (``waybill.common.http.app``, ``.problems``, ...); this package
module stays empty so importing one part never drags in the rest.
"""
