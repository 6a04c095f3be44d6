"""Who is asking and what they may do: passwords, principals, roles, robots, tokens, throttling."""
