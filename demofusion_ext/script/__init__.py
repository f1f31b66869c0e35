"""What the WebUI script needs beyond the engine, still free of any WebUI import: its arguments (API and PNG info),
the plan line, and the README's controls table, all made from the settings table (settings.SETTINGS)."""
