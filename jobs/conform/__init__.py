"""Stage 2, conform: bronze -> silver + quarantine (the contract compiled to one SQL pass of rules)."""
