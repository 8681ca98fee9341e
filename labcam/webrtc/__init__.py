"""WebRTC viewers through a Janus server: labcam publishes H.264 as RTP, Janus fans it out.

- ``janus``: a Janus of our own (generated config) or a running one; mountpoints and per-viewer
  tokens through its APIs.
- ``rtp``: RFC 6184 packetizing, pacing, the frame-info SEI, RTCP keyframe requests.
- ``publisher``: the engine subscription → H.264 → RTP to Janus, and what a viewer is handed.
"""
