"""orchestrator: keeps Twilio Bulk Export day files safe before Twilio deletes them."""

__version__ = "0.1.0"
