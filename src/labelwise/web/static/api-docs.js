// Swagger UI for /api/docs. A file, not inline code: the page CSP allows same-origin scripts only.
/* global SwaggerUIBundle */

const CSRF_COOKIE = "labelwise_csrf";

function csrfToken() {
  const found = document.cookie.split("; ").find((c) => c.startsWith(`${CSRF_COOKIE}=`));
  return found ? decodeURIComponent(found.slice(CSRF_COOKIE.length + 1)) : null;
}

const root = document.getElementById("swagger-ui");
window.ui = SwaggerUIBundle({
  url: root.dataset.openapiUrl,
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
  // "Try it out" from a signed-in browser: state-changing requests need the CSRF token.
  requestInterceptor: (request) => {
    const token = csrfToken();
    if (token) request.headers["X-CSRF-Token"] = token;
    return request;
  },
});
