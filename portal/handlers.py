"""Error pages: JSON for API paths, friendly pages for people."""

from django.template.response import TemplateResponse

from portal.errors import ErrorCode, json_error
from portal.middleware import API_PREFIXES


def _is_api(request) -> bool:
    return request.path.startswith(API_PREFIXES)


def not_found(request, exception=None):
    if _is_api(request):
        return json_error(status=404, code=ErrorCode.NOT_FOUND,
                          message=f"No resource at {request.path}.")
    return TemplateResponse(request, "error.html",
                            {"status": 404, "title": "Page not found",
                             "message": "The page you asked for does not exist."}, status=404)


def forbidden(request, exception=None):
    if _is_api(request):
        return json_error(status=403, code=ErrorCode.ROLE_FORBIDDEN,
                          message=str(exception) or "Forbidden.")
    return TemplateResponse(request, "error.html",
                            {"status": 403, "title": "Not allowed",
                             "message": str(exception) or "You may not open this page."},
                            status=403)


def server_error(request):
    if _is_api(request):
        return json_error(status=500, code=ErrorCode.SERVER_ERROR,
                          message="Internal server error.")
    return TemplateResponse(request, "error.html",
                            {"status": 500, "title": "Something went wrong",
                             "message": "The error has been logged."}, status=500).render()
