"""HTTP routes of the shipping service (CONTRACT.md § shipping). Thin: parse, authorise, call, map.

Who may see what: admins see every shipment and agent of their tenant; an agent sees only
the shipments assigned to it and its own offers; anything else is 404, as if it did not exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from sqlalchemy.ext.asyncio import AsyncConnection

from waybill.common.auth import Principal, require_role
from waybill.common.eventstore import Caller
from waybill.common.http.caller import caller_of, require_caller
from waybill.common.http.errors import ErrorStatus
from waybill.common.http.openapi import problem_responses
from waybill.common.http.pagination import Page, PageParams, page_params
from waybill.common.http.streams import EventView, after_version, stream_page
from waybill.common.keyset import next_cursor, position_from_cursor
from waybill.common.registry import EventRegistry
from waybill.shipping import repository as db
from waybill.shipping.agents import AgentDirectory
from waybill.shipping.codes import DeliveryCodes
from waybill.shipping.domain import errors
from waybill.shipping.domain import shipment as s
from waybill.shipping.handlers import ShipmentBusy, ShippingHandlers
from waybill.shipping.schemas import (
    ActionIn,
    AgentIn,
    AgentPatch,
    DeclineIn,
    DeliverIn,
    MarkFailedIn,
    SettingsIn,
)
from waybill.shipping.views import (
    AgentView,
    AssignmentView,
    CapacityView,
    CreatedAgentView,
    SettingsView,
    ShipmentView,
)

router = APIRouter()
ShipmentId = Annotated[str, Path(pattern=r"^shp_[0-9a-f]{32}$")]
AgentId = Annotated[str, Path(pattern=r"^agt_[0-9a-f]{32}$")]
AssignmentId = Annotated[str, Path(pattern=r"^asg_[0-9a-f]{32}$")]

AdminCaller = Annotated[Caller, Depends(require_caller("admin"))]
admin_or_agent = require_role("admin", "agent")
_agent_role = require_role("agent")

# The one place shipping's error codes meet HTTP (STYLE.md #14), handed to create_app.
ERROR_STATUS: ErrorStatus = {
    errors.ShippingError.code: 409,
    errors.ShipmentNotFound.code: 404,
    errors.AgentNotFound.code: 404,
    errors.AssignmentNotFound.code: 404,
    errors.InvalidTransition.code: 409,
    errors.AssignmentConflict.code: 409,
    errors.AssignmentAlreadyAccepted.code: 409,
    errors.OfferExpired.code: 409,
    errors.AgentAtCapacity.code: 409,
    errors.DeliveryAttemptsExhausted.code: 409,
    errors.DeliveryCodeMismatch.code: 422,
    errors.DeliveryCodeLocked.code: 409,
    errors.InvalidAgent.code: 422,
    ShipmentBusy.code: 409,
}


@dataclass(frozen=True)
class AgentCaller:
    """An agent's request: the caller of its commands and the agent it is."""

    caller: Caller
    agent_id: str


async def agent_caller(
    request: Request, principal: Annotated[Principal, Depends(_agent_role)]
) -> AgentCaller:
    if principal.agent_id is None:  # an agent-role key issued without an agent (CLI)
        raise errors.AgentNotFound("this agent key belongs to no agent")
    return AgentCaller(caller_of(request, principal), principal.agent_id)


Agent = Annotated[AgentCaller, Depends(agent_caller)]


@dataclass(frozen=True)
class Services:
    handlers: ShippingHandlers
    agents: AgentDirectory
    codes: DeliveryCodes
    registry: EventRegistry
    max_attempts: int


async def services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


Svc = Annotated[Services, Depends(services)]


def _visible_to(principal: Principal) -> str | None:
    """The agent whose shipments a principal may see (None: an admin sees all)."""
    return principal.agent_id if principal.role == "agent" else None


# --- agents ----------------------------------------------------------------------------------


@router.post(
    "/agents",
    status_code=201,
    response_model=CreatedAgentView,
    tags=["agents"],
    responses=problem_responses({422: ["VALIDATION_ERROR"]}),
)
async def create_agent(body: AgentIn, svc: Svc, caller: AdminCaller) -> CreatedAgentView:
    """Add a delivery agent; its API key (role ``agent``) is in the response, this once only."""
    return await svc.agents.create(
        caller,
        name=body.name,
        zip_codes=body.service_zip_codes,
        capacity=body.capacity,
        shifts=[shift.to_shift() for shift in body.shifts],
    )


@router.get("/agents", response_model=Page[AgentView], tags=["agents"])
async def list_agents(
    svc: Svc,
    caller: AdminCaller,
    page: Annotated[PageParams, Depends(page_params)],
) -> Page[AgentView]:
    items, last = await svc.agents.list(
        caller.tenant_id, limit=page.limit, after=position_from_cursor(page.after)
    )
    return Page[AgentView](items=items, next_cursor=next_cursor(last))


@router.get(
    "/agents/{agent_id}",
    response_model=AgentView,
    tags=["agents"],
    responses=problem_responses({404: ["AGENT_NOT_FOUND"]}),
)
async def get_agent(agent_id: AgentId, svc: Svc, caller: AdminCaller) -> AgentView:
    return await svc.agents.get(caller.tenant_id, agent_id)


@router.patch(
    "/agents/{agent_id}",
    response_model=AgentView,
    tags=["agents"],
    responses=problem_responses({404: ["AGENT_NOT_FOUND"]}),
)
async def update_agent(
    agent_id: AgentId, body: AgentPatch, svc: Svc, caller: AdminCaller
) -> AgentView:
    """Change an agent (``active``, ``service_zip_codes``, ``capacity``, ``shifts``); fields
    left out stay as they are."""
    changes: dict[str, Any] = body.model_dump(exclude_unset=True, exclude_none=True)
    if body.shifts is not None:
        changes["shifts"] = [shift.to_shift() for shift in body.shifts]
    return await svc.agents.update(caller, agent_id, changes)


@router.get("/capacity", response_model=CapacityView, tags=["agents"])
async def capacity(svc: Svc, caller: AdminCaller) -> CapacityView:
    """Per postal code and per agent: active shipments against capacity; a postal code above
    70 % utilisation is a hotspot."""
    return await svc.agents.capacity(caller.tenant_id)


@router.get("/settings", response_model=SettingsView, tags=["settings"])
async def get_settings(svc: Svc, caller: AdminCaller) -> SettingsView:
    return await svc.agents.settings(caller.tenant_id)


@router.put("/settings", response_model=SettingsView, tags=["settings"])
async def put_settings(body: SettingsIn, svc: Svc, caller: AdminCaller) -> SettingsView:
    """``require_delivery_code``: ``deliver`` then needs the code the customer received.
    ``offer_wave_size`` / ``offer_ttl_s``: this tenant's dispatch policy (``null``: the
    service's defaults, ``WAYBILL_SHIPPING_OFFER_WAVE_SIZE`` / ``_OFFER_TTL_S``). Fields left
    out keep their values."""
    changes = body.model_dump(exclude_unset=True)
    if changes.get("require_delivery_code", False) is None:
        changes.pop("require_delivery_code")  # not nullable: null means "leave it"
    return await svc.agents.put_settings(caller.tenant_id, changes)


# --- offers ----------------------------------------------------------------------------------


@router.get("/assignments", response_model=Page[AssignmentView], tags=["assignments"])
async def list_assignments(
    svc: Svc,
    agent: Agent,
    page: Annotated[PageParams, Depends(page_params)],
    status: Annotated[
        str | None,
        Query(
            pattern="^(offered|accepted|declined|expired|lost|withdrawn)$",
            description="offered: the still-open offers only",
        ),
    ] = None,
) -> Page[AssignmentView]:
    """The calling agent's offers, newest first."""
    items, last = await svc.handlers.list_assignments(
        agent.caller.tenant_id,
        agent.agent_id,
        status=status,
        limit=page.limit,
        after=position_from_cursor(page.after),
    )
    return Page[AssignmentView](items=items, next_cursor=next_cursor(last))


@router.post(
    "/assignments/{assignment_id}/accept",
    response_model=ShipmentView,
    tags=["assignments"],
    responses=problem_responses(
        {
            404: ["ASSIGNMENT_NOT_FOUND"],
            409: [
                "ASSIGNMENT_CONFLICT",
                "ASSIGNMENT_ALREADY_ACCEPTED",
                "OFFER_EXPIRED",
                "AGENT_AT_CAPACITY",
            ],
        }
    ),
)
async def accept(assignment_id: AssignmentId, svc: Svc, agent: Agent) -> ShipmentView:
    """Take the offered shipment. Of agents accepting at once exactly one wins; the others get
    409 ``ASSIGNMENT_CONFLICT`` (ask again: it then says who won) or
    ``ASSIGNMENT_ALREADY_ACCEPTED``. The winner asking again gets 200 and nothing changes."""
    return await svc.handlers.accept(agent.caller, agent.agent_id, assignment_id)


@router.post(
    "/assignments/{assignment_id}/decline",
    response_model=dict[str, str],
    tags=["assignments"],
    responses=problem_responses(
        {
            404: ["ASSIGNMENT_NOT_FOUND"],
            409: ["ASSIGNMENT_CONFLICT", "ASSIGNMENT_ALREADY_ACCEPTED", "OFFER_EXPIRED"],
        }
    ),
)
async def decline(
    assignment_id: AssignmentId, svc: Svc, agent: Agent, body: DeclineIn | None = None
) -> dict[str, str]:
    """Turn the offer down; once every agent of a wave declined, the next wave goes out."""
    reason = body.reason if body else None
    await svc.handlers.decline(agent.caller, agent.agent_id, assignment_id, reason)
    return {"status": "declined"}


# --- shipments -------------------------------------------------------------------------------


@router.get("/shipments", response_model=Page[ShipmentView], tags=["shipments"])
async def list_shipments(
    svc: Svc,
    principal: Annotated[Principal, Depends(admin_or_agent)],
    page: Annotated[PageParams, Depends(page_params)],
    order_id: Annotated[str | None, Query(pattern=r"^ord_[0-9a-f]{32}$")] = None,
    status: Annotated[s.ShipmentStatus | None, Query()] = None,
) -> Page[ShipmentView]:
    """Newest first; an agent sees only the shipments assigned to it."""
    items, last = await svc.handlers.list_shipments(
        principal.tenant_id,
        order_id=order_id,
        status=status.value if status else None,
        agent_id=_visible_to(principal),
        limit=page.limit,
        after=position_from_cursor(page.after),
    )
    return Page[ShipmentView](items=items, next_cursor=next_cursor(last))


NOT_FOUND = problem_responses({404: ["SHIPMENT_NOT_FOUND"]})


@router.get(
    "/shipments/{shipment_id}", response_model=ShipmentView, tags=["shipments"], responses=NOT_FOUND
)
async def get_shipment(
    shipment_id: ShipmentId, svc: Svc, principal: Annotated[Principal, Depends(admin_or_agent)]
) -> ShipmentView:
    return await svc.handlers.get_shipment(
        principal.tenant_id, shipment_id, agent_id=_visible_to(principal)
    )


@router.get(
    "/shipments/{shipment_id}/events",
    response_model=Page[EventView],
    tags=["shipments"],
    responses=NOT_FOUND,
)
async def shipment_events(
    shipment_id: ShipmentId,
    svc: Svc,
    principal: Annotated[Principal, Depends(admin_or_agent)],
    page: Annotated[PageParams, Depends(page_params)],
) -> Page[EventView]:
    """The shipment's event stream in version order, a page at a time (delivery codes and
    their hashes left out)."""
    recorded, last = await svc.handlers.shipment_events(
        principal.tenant_id,
        shipment_id,
        agent_id=_visible_to(principal),
        after_version=after_version(page),
        limit=page.limit,
    )
    return stream_page(recorded, last, svc.registry)


TRANSITION_ERRORS = problem_responses(
    {404: ["SHIPMENT_NOT_FOUND"], 409: ["INVALID_TRANSITION", "SHIPMENT_BUSY"]}
)


@router.post(
    "/shipments/{shipment_id}/ship",
    response_model=ShipmentView,
    tags=["shipments"],
    responses=TRANSITION_ERRORS,
)
async def ship(
    shipment_id: ShipmentId, svc: Svc, agent: Agent, body: ActionIn | None = None
) -> ShipmentView:
    """pending -> in_transit; the customer gets a new delivery code."""

    async def command(conn: AsyncConnection, state: s.Shipment) -> s.Command:
        return s.Ship(agent.agent_id, svc.codes.issue(shipment_id), _notes(body))

    return await svc.handlers.act(agent.caller, shipment_id, command)


@router.post(
    "/shipments/{shipment_id}/deliver",
    response_model=ShipmentView,
    tags=["shipments"],
    responses=problem_responses(
        {
            404: ["SHIPMENT_NOT_FOUND"],
            409: ["INVALID_TRANSITION", "SHIPMENT_BUSY", "DELIVERY_CODE_LOCKED"],
            422: ["DELIVERY_CODE_MISMATCH"],
        }
    ),
)
async def deliver(
    shipment_id: ShipmentId, svc: Svc, agent: Agent, body: DeliverIn | None = None
) -> ShipmentView:
    """in_transit -> delivered. Where the tenant requires it (``PUT /settings``), ``code`` must
    be the customer's: wrong -> 422; the fifth wrong code and every try after it -> 409
    ``DELIVERY_CODE_LOCKED`` until an admin resets the code. Otherwise ``code`` is ignored."""
    code = body.code if body else None

    async def command(conn: AsyncConnection, state: s.Shipment) -> s.Command:
        required = await db.require_delivery_code(conn, agent.caller.tenant_id)
        code_hash = svc.codes.hash_of(shipment_id, code) if code and required else None
        return s.Deliver(
            agent.agent_id,
            svc.handlers.clock(),
            require_code=required,
            code_hash=code_hash,
            notes=_notes(body),
        )

    return await svc.handlers.act(agent.caller, shipment_id, command)


@router.post(
    "/shipments/{shipment_id}/mark_failed",
    response_model=ShipmentView,
    tags=["shipments"],
    responses=TRANSITION_ERRORS,
)
async def mark_failed(
    shipment_id: ShipmentId, body: MarkFailedIn, svc: Svc, agent: Agent
) -> ShipmentView:
    """pending|in_transit -> failed, with one of the contract's reasons."""

    async def command(conn: AsyncConnection, state: s.Shipment) -> s.Command:
        return s.MarkFailed(agent.agent_id, body.reason, body.notes)

    return await svc.handlers.act(agent.caller, shipment_id, command)


@router.post(
    "/shipments/{shipment_id}/return_to_sender",
    response_model=ShipmentView,
    tags=["shipments"],
    responses=TRANSITION_ERRORS,
)
async def return_to_sender(
    shipment_id: ShipmentId, svc: Svc, agent: Agent, body: ActionIn | None = None
) -> ShipmentView:
    """failed|in_transit -> returned."""

    async def command(conn: AsyncConnection, state: s.Shipment) -> s.Command:
        return s.ReturnToSender(agent.agent_id, _notes(body))

    return await svc.handlers.act(agent.caller, shipment_id, command)


@router.post(
    "/shipments/{shipment_id}/retry_delivery",
    response_model=ShipmentView,
    tags=["shipments"],
    responses=problem_responses(
        {
            404: ["SHIPMENT_NOT_FOUND"],
            409: ["INVALID_TRANSITION", "SHIPMENT_BUSY", "DELIVERY_ATTEMPTS_EXHAUSTED"],
        }
    ),
)
async def retry_delivery(
    shipment_id: ShipmentId, svc: Svc, agent: Agent, body: ActionIn | None = None
) -> ShipmentView:
    """failed|returned -> in_transit, a new attempt with a new delivery code; after
    ``WAYBILL_SHIPPING_MAX_ATTEMPTS`` attempts (default 3) only return_to_sender is left."""

    async def command(conn: AsyncConnection, state: s.Shipment) -> s.Command:
        issued = svc.codes.issue(shipment_id)
        return s.RetryDelivery(agent.agent_id, issued, svc.max_attempts, _notes(body))

    return await svc.handlers.act(agent.caller, shipment_id, command)


@router.post(
    "/shipments/{shipment_id}/reset-code",
    response_model=ShipmentView,
    tags=["shipments"],
    responses=TRANSITION_ERRORS,
)
async def reset_code(shipment_id: ShipmentId, svc: Svc, caller: AdminCaller) -> ShipmentView:
    """Issue a new delivery code (the customer receives it) and unlock the code check."""

    async def command(conn: AsyncConnection, state: s.Shipment) -> s.Command:
        return s.ResetCode(svc.codes.issue(shipment_id))

    return await svc.handlers.act(caller, shipment_id, command)


def _notes(body: ActionIn | None) -> str | None:
    return body.notes if body else None
