"""What the server and the engine workers agree on: redraft tasks and the job protocol (torch-free, redis-free)."""
