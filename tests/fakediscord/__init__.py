"""A fake Discord (REST + gateway + CDN) on 127.0.0.1 for end-to-end tests of the real discord.py client."""

from .client import pointed_at, run_discord_client
from .server import FakeDiscord, serving_fake
from .state import (
    CdnFault,
    FakeAttachment,
    FakeChannel,
    FakeConfig,
    FakeGuild,
    FakeMember,
    FakeMessage,
    FakeRole,
    FakeUser,
    FileSpec,
    InteractionRecord,
    Perm,
    RecordedRequest,
    RegisteredCommand,
    UploadedFile,
)

__all__ = [
    "CdnFault",
    "FakeAttachment",
    "FakeChannel",
    "FakeConfig",
    "FakeDiscord",
    "FakeGuild",
    "FakeMember",
    "FakeMessage",
    "FakeRole",
    "FakeUser",
    "FileSpec",
    "InteractionRecord",
    "Perm",
    "RecordedRequest",
    "RegisteredCommand",
    "UploadedFile",
    "pointed_at",
    "run_discord_client",
    "serving_fake",
]
