// Orthanc Gate's additions to Orthanc Explorer 2, added to OE2's page by the Gate
// (handlers/explorer2.py) before OE2's own code runs.
//
// - Sign-out and "signed in as": OE2 shows its profile menu (the name from the configuration's
//   "Profile", which the Gate builds) with "Logout" and "Change password" only when
//   `window.keycloak` exists, and calls its logout()/login() from them. This stands in for it:
//   logout posts the Gate's sign-out form, login with UPDATE_PASSWORD opens the Gate's password page.
//   OE2 uses `window.keycloak` for nothing else unless its own Keycloak set-up is on, which the Gate's
//   pre-login configuration never turns on.
// - Refusals are not silent: OE2 ignores a 401 or 403. When the session has ended (a 401, or a 403
//   while /gate/api/me says so) the browser goes to sign in and back; another 403 says it was refused.
(function () {
  "use strict";
  var base = window.location.pathname.split("/ui/app")[0];

  function signIn() {
    var here = window.location.pathname + window.location.search;
    window.location.assign(base + "/gate/login?next=" + encodeURIComponent(here));
  }

  // X-Requested-With: a 401 then comes without a Basic challenge, which would make the browser
  // prompt for a password (handlers/http.py error_response).
  var asScript = { credentials: "same-origin", headers: { Accept: "application/json", "X-Requested-With": "XMLHttpRequest" } };

  function signOut() {
    return fetch(base + "/gate/api/me", asScript)
      .then(function (answer) { return answer.ok ? answer.json() : {}; })
      .then(function (me) {
        var form = document.createElement("form");
        form.method = "post";
        form.action = base + "/gate/logout";
        var token = document.createElement("input");
        token.type = "hidden";
        token.name = "csrf_token";
        token.value = me.csrf_token || "";
        form.appendChild(token);
        document.body.appendChild(form);
        form.submit();
        return true;
      });
  }

  window.keycloak = {
    logout: signOut,
    login: function (options) {
      if (options && options.action === "UPDATE_PASSWORD") {
        window.location.assign(base + "/gate/password");
      }
      return Promise.resolve(true);
    }
  };

  var notice = null;
  function showRefusal(message) {
    if (!document.body) {
      return;
    }
    if (notice === null) {
      notice = document.createElement("div");
      notice.id = "gate-refusal";
      notice.setAttribute("role", "alert");
      notice.style.cssText = "position:fixed;bottom:1rem;left:50%;transform:translateX(-50%);z-index:9999;" +
        "max-width:90%;padding:.6rem 1rem;border-radius:.4rem;background:#7a1d1d;color:#fff;" +
        "font:14px/1.4 system-ui,sans-serif;box-shadow:0 2px 8px rgba(0,0,0,.3)";
      document.body.appendChild(notice);
    }
    notice.textContent = message;
    notice.style.display = "block";
    window.clearTimeout(showRefusal.timer);
    showRefusal.timer = window.setTimeout(function () { notice.style.display = "none"; }, 6000);
  }

  function refusalText(request) {
    var said = "";
    try {
      said = JSON.parse(request.responseText).message || "";
    } catch (e) {
      said = "";
    }
    return "Not allowed: " + (said || "your access to this study does not include that.");
  }

  var open = XMLHttpRequest.prototype.open;
  XMLHttpRequest.prototype.open = function () {
    this.addEventListener("loadend", function () {
      var request = this;
      if (request.status === 401) {
        signIn();
      } else if (request.status === 403) {
        // Orthanc answers every refusal of its request filter 403, an ended session's too: ask
        // the Gate whether the session still holds before saying "not allowed".
        fetch(base + "/gate/api/me", asScript)
          .then(function (me) {
            if (me.status === 401) {
              signIn();
            } else {
              showRefusal(refusalText(request));
            }
          });
      }
    });
    return open.apply(this, arguments);
  };
})();
