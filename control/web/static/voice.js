// A voice call with an agent from the browser: LiveKit's JS client (vendored) in a room the
// control plane mints a token for (`GET /calls/generate-token`), with the live transcript.

import { api } from "./api.js";
import { messageItem } from "./conversation.js";
import { query, say } from "./ui.js";

let room = null;

export async function startVoiceCall(agent, stateLine, conversation) {
  const button = document.getElementById("voice-call");
  if (room) {
    await room.disconnect();
    room = null;
    button.textContent = "Talk by voice";
    stateLine.textContent = "The call has ended.";
    return;
  }
  if (!agent.phone_number) {
    say("Give the agent a phone number first: web calls are placed to the agent by its number.", "error");
    return;
  }
  const grant = await api("GET", `/calls/generate-token${query({ phone: agent.phone_number, public_key: agent.web_call_public_key })}`);
  if (!grant.url) {
    say("LiveKit is not configured on this server, so voice calls are unavailable.", "error");
    return;
  }
  const { Room, RoomEvent } = window.LivekitClient;
  room = new Room();
  const lines = new Map();
  room.on(RoomEvent.TrackSubscribed, (track) => {
    if (track.kind === "audio") document.body.append(track.attach());
  });
  room.on(RoomEvent.TranscriptionReceived, (segments, participant) => {
    const role = participant && participant.identity === room.localParticipant.identity ? "user" : "assistant";
    for (const segment of segments) {
      const item = messageItem(role, segment.text, { speakers: { user: "You", assistant: "Agent" } });
      const previous = lines.get(segment.id);
      if (previous) previous.replaceWith(item);
      else conversation.append(item);
      lines.set(segment.id, item);
    }
  });
  room.on(RoomEvent.Disconnected, () => {
    stateLine.textContent = "The call has ended.";
    button.textContent = "Talk by voice";
    room = null;
  });
  try {
    await room.connect(grant.url, grant.token);
    await room.localParticipant.setMicrophoneEnabled(true);
  } catch (error) {
    room = null;
    throw new Error(`Could not connect the voice call to LiveKit (${grant.url}): ${error.message}`);
  }
  stateLine.hidden = false;
  stateLine.textContent = "Connected: speak to the agent.";
  button.textContent = "Hang up";
}
