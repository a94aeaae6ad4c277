"""The embedded default's message broker: kombu's filesystem transport, publishing atomically.

kombu writes a message in place: it creates ``<time>_<uuid>.<queue>.msg`` and then writes the
body into it. A consumer polling the folder in between moves the still-empty file away and
fails to parse it; the worker stops with "Unrecoverable error: JSONDecodeError" and the message
is lost (kombu issue 1551; seen in ``make test`` on a laptop). Here a message is written under
a name no consumer takes (``….msg.part``) and renamed into the queue when whole, and a consumer
moves the file it takes into the processed folder (beside the queue, so the move is a rename,
which only one consumer can win) rather than into the system's temporary folder, which may be
another filesystem, where a move is a copy two consumers can make at once.

``settings`` installs it under kombu's ``filesystem`` alias, so ``filesystem://`` URLs use it.
"""

from __future__ import annotations

import os
import uuid
from queue import Empty
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads

PARTIAL = ".part"


class Channel(filesystem.Channel):
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = final + PARTIAL
        try:
            with open(partial, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc

    def _get(self, queue: str) -> Any:
        wanted = f"{queue}.msg"
        os.makedirs(self.processed_folder, exist_ok=True)
        for name in sorted(os.listdir(self.data_folder_in)):
            if name.partition(".")[2] != wanted:
                continue
            taken = os.path.join(self.processed_folder, name)
            try:
                os.rename(os.path.join(self.data_folder_in, name), taken)
            except OSError:
                continue  # another consumer took it first
            try:
                with open(taken, "rb") as f:
                    payload = f.read()
                if not self.store_processed:
                    os.remove(taken)
            except OSError as exc:
                raise ChannelError(f"Cannot read file {taken!r} from queue.") from exc
            return loads(bytes_to_str(payload))
        raise Empty()


class Transport(filesystem.Transport):
    Channel = Channel


def install() -> None:
    """Make ``filesystem://`` broker URLs use this transport (in every process that loads the
    settings: web, workers, beat, commands)."""
    TRANSPORT_ALIASES["filesystem"] = f"{__name__}:Transport"
