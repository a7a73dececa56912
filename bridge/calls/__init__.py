"""Calls: the call manager, the legs (SIP, WebRTC) and what joins them to agent sessions."""
