"""Protocol-level stand-ins for outside services (OpenAI, Deepgram, ...)."""
