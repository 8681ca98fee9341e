"""A stand-in for the original prototype's stream server (the seed's FastAPI `camera_streamer`):
JSON-only, base64 JPEG inside `{"type": "frame", "data": ...}` messages, a confirmation message
without a protocol version, no stats, no pongs, no control messages. The end-to-end test checks that
CameraControl.vue (format "json") still shows its frames.

    python seed_server.py PORT
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import sys
import time

import numpy as np
from PIL import Image
from tornado import web, websocket

WIDTH, HEIGHT, FPS = 320, 240, 20


def gradient_frames(n: int = 16) -> list[str]:
    """The seed's "simulated gradient pattern", moving: n base64 JPEGs."""
    x = np.arange(WIDTH, dtype=np.float32)[None, :]
    y = np.arange(HEIGHT, dtype=np.float32)[:, None]
    out = []
    for i in range(n):
        img = (127 + 127 * np.sin((x + y + i * 20) / 25.0)).astype(np.uint8)
        rgb = np.stack([img, img[::-1], np.full_like(img, 64)], axis=-1)
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, "JPEG", quality=85)
        out.append(base64.b64encode(buf.getvalue()).decode("ascii"))
    return out


FRAMES = gradient_frames()


class Stream(websocket.WebSocketHandler):
    def check_origin(self, origin: str) -> bool:
        return True  # the prototype allowed every origin

    def open(self) -> None:
        self.write_message(json.dumps({"type": "connected", "message": "Connected to camera stream"}))
        self.task = asyncio.ensure_future(self.pump())

    async def pump(self) -> None:
        n = 0
        try:
            while True:
                msg = {"type": "frame", "data": FRAMES[n % len(FRAMES)], "timestamp": time.time(), "frame_number": n}
                await self.write_message(json.dumps(msg))
                n += 1
                await asyncio.sleep(1 / FPS)
        except (websocket.WebSocketClosedError, asyncio.CancelledError):
            pass

    def on_message(self, message: str | bytes) -> None:
        pass  # the prototype ignored what clients sent

    def on_close(self) -> None:
        self.task.cancel()


async def main(port: int) -> None:
    app = web.Application([(r"/ws/camera/stream", Stream)])
    app.listen(port, "127.0.0.1")
    print(f"listening on http://127.0.0.1:{port}/", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
