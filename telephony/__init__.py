"""LiveKit SIP trunks, dispatch rules, outbound dialing and phone-number providers."""
