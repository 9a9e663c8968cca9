"use strict";
// Shows the failure notice after a refused token (the server redirects to ?failed=1).
document.addEventListener("DOMContentLoaded", () => {
  if (new URLSearchParams(window.location.search).has("failed")) {
    document.getElementById("failed").hidden = false;
  }
  document.getElementById("token").focus();
});
