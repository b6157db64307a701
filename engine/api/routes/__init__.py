"""Route modules; each exposes ``router: APIRouter``."""
