// Renders the API reference from /api/v1/openapi.json with the Swagger UI the server ships.
(function () {
  "use strict";
  var root = document.getElementById("reference");
  window.SwaggerUIBundle({
    url: root.getAttribute("data-spec"),
    domNode: root,
    deepLinking: true,
    tryItOutEnabled: false,
  });
})();
