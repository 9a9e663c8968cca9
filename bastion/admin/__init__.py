"""The admin listener: health endpoints now, the admin API and dashboard later."""
