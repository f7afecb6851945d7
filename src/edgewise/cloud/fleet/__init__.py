"""Fleet status: what each device last said about itself (health, components, last deployment, presence)."""
