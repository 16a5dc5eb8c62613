"""The AUTOMATIC1111 WebUI's own API (`/sdapi/v1/…`, `/rembg`) on top of OpenESD's users, jobs and endpoints."""
