/**
 * Orthanc Gate: the Orthanc Web Viewer as a user who is not an admin may use it. Added to the
 * viewer's page for them only (handlers/pages.py); admins get the page unchanged. Its "Download
 * DICOM" button fetches the original file, which needs the download level on the series' study.
 * The gate refuses that request whatever the page shows: this only spares a button that would fail.
 */
(function () {
  var series = /[?&]series=([^&#]*)/.exec(window.location.search);
  var level = null;
  if (series) {
    var request = new XMLHttpRequest();
    request.open('GET', '../../gate/api/me?series=' + series[1], false);  // before the toolbar is shown
    request.send();
    try {
      var answer = JSON.parse(request.responseText);
      level = answer.access ? answer.access.level : null;
    } catch (e) {
      level = null;
    }
  }
  if (['download', 'annotate', 'report', 'share', 'full'].indexOf(level) < 0) {
    var style = document.createElement('style');
    style.textContent = 'button[title="Download DICOM"]{display:none!important}';
    document.head.appendChild(style);
  }
})();
