// A page bookmarked with a fragment (Orthanc Explorer's "#study?uuid=...") reaches the sign-in page
// with it, but a browser never sends a fragment to the server: carry it in the form's "next".
(function () {
  var next = document.querySelector('input[name="next"]');
  if (next && window.location.hash && next.value.indexOf('#') < 0) {
    next.value += window.location.hash;
  }
})();
