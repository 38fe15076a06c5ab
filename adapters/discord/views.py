"""Result buttons (``DynamicItem``, restart-safe) and the Edit / Imagine modals.

Buttons carry only ``bb:<action>:<job>:<index>``: discord.py rebuilds them from the custom
id after any restart and everything else is read from the store. Modals are not restart-safe
in discord.py (platforms.md §3.4), so they are sent already stopped (never kept in memory)
and every submit is handled by :meth:`adapters.discord.client.BananaClient.on_interaction`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol, runtime_checkable

import discord

from adapters.discord.translate import (
    BUTTON_TEMPLATE,
    ButtonRef,
    button_id,
    edit_modal_id,
    imagine_modal_id,
    parse_button_id,
)
from bot.models import JobAction

__all__ = [
    "INSTRUCTION_FIELD",
    "PROMPT_FIELD",
    "ButtonHandler",
    "ButtonSpec",
    "ResultButton",
    "edit_modal",
    "imagine_modal",
    "result_view",
]

INSTRUCTION_FIELD: Final = "instruction"
PROMPT_FIELD: Final = "prompt"
_STYLES: Final = {
    JobAction.VARY: discord.ButtonStyle.secondary,
    JobAction.UPSCALE: discord.ButtonStyle.secondary,
    JobAction.EDIT: discord.ButtonStyle.primary,
}


@runtime_checkable
class ButtonHandler(Protocol):
    """What a result button calls: the client's flows (see :mod:`adapters.discord.flows`)."""

    async def on_button(self, interaction: discord.Interaction[Any], ref: ButtonRef) -> None: ...


@dataclass(frozen=True, slots=True)
class ButtonSpec:
    """One button to draw: what it does and its label."""

    ref: ButtonRef
    label: str


class ResultButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=BUTTON_TEMPLATE,
):
    """Vary / Upscale 4K / Edit on one image; rebuilt from its custom id after restarts."""

    def __init__(self, ref: ButtonRef, label: str, row: int | None = None) -> None:
        super().__init__(
            discord.ui.Button(
                label=label,
                custom_id=button_id(ref.action, ref.job_id, ref.index),
                style=_STYLES[ref.action],
                row=row,
            )
        )
        self.ref = ref

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> ResultButton:
        ref = parse_button_id(match.string)
        if ref is None:  # the template matched, so this cannot happen
            raise ValueError(f"not a result button: {match.string!r}")
        label = item.label if isinstance(item, discord.ui.Button) and item.label else "…"
        return cls(ref, label)

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        handler = getattr(interaction.client, "flows", None)
        if isinstance(handler, ButtonHandler):
            await handler.on_button(interaction, self.ref)


def result_view(rows: Sequence[Sequence[ButtonSpec]]) -> discord.ui.View:
    """A view of result buttons, one row per image (at most 5 rows of at most 5 buttons).

    Raises:
        ValueError: more than 5 rows or 5 buttons in a row (Discord's limits, §3.3).
    """
    if len(rows) > 5 or any(len(row) > 5 for row in rows):
        raise ValueError("a message holds at most 5 rows of 5 buttons")
    view = discord.ui.View(timeout=None)
    for number, row in enumerate(rows):
        for spec in row:
            view.add_item(ResultButton(spec.ref, spec.label, row=number))
    return view


def _stopped(modal: discord.ui.Modal) -> discord.ui.Modal:
    # A finished modal is not stored by send_modal(): submits go to on_interaction only,
    # which works after restarts, and nothing piles up in memory for dismissed modals.
    modal.stop()
    return modal


def edit_modal(job_id: str, index: int) -> discord.ui.Modal:
    """The Edit modal of image ``index`` of ``job_id``: one instruction field."""
    modal = discord.ui.Modal(title="Edit image", custom_id=edit_modal_id(job_id, index))
    modal.add_item(
        discord.ui.Label(
            text="What should change?",
            description="The image is kept as the reference; describe the change.",
            component=discord.ui.TextInput(
                custom_id=INSTRUCTION_FIELD,
                style=discord.TextStyle.paragraph,
                min_length=3,
                max_length=4000,
                placeholder="make the sky stormy, keep everything else",
            ),
        )
    )
    return _stopped(modal)


def imagine_modal(message_id: int, images: int) -> discord.ui.Modal:
    """The "Imagine from this" modal: the prompt for a job using a message's images."""
    modal = discord.ui.Modal(title="Imagine from this", custom_id=imagine_modal_id(message_id))
    noun = "image" if images == 1 else f"{images} images"
    modal.add_item(
        discord.ui.Label(
            text="Prompt",
            description=f"The message's {noun} will be the reference{'s' if images > 1 else ''}.",
            component=discord.ui.TextInput(
                custom_id=PROMPT_FIELD,
                style=discord.TextStyle.paragraph,
                min_length=3,
                max_length=4000,
            ),
        )
    )
    return _stopped(modal)
