"""Who may do what in an incident. Pure rules over the incident's current roles."""

from bot.models import ChecklistItem, Incident


def may_lead(incident: Incident, user: str, lead_role: str) -> bool:
    """Decisions for the whole incident: the lead, or the reporter while nobody leads."""
    if lead_role in incident.roles_of(user):
        return True
    return not incident.holders(lead_role) and user == incident.reporter_id


def may_assign(incident: Incident, actor: str, role: str, lead_role: str) -> bool:
    """The lead staffs any role; a holder may hand their own role over."""
    return may_lead(incident, actor, lead_role) or role in incident.roles_of(actor)


def may_change_item(incident: Incident, user: str, item: ChecklistItem, lead_role: str) -> bool:
    """The owner role's holder or the lead; while the owner role is free, anyone who holds a role."""
    roles = incident.roles_of(user)
    if item.owner_role in roles or may_lead(incident, user, lead_role):
        return True
    return bool(roles) and not incident.holders(item.owner_role)
