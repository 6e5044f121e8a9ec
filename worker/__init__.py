"""`redraft worker`: the GPU engine worker that takes redraft jobs from Redis."""
