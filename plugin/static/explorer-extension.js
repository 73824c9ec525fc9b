/**
 * Orthanc Gate: Orthanc Explorer as each user may use it (registered with
 * ExtendOrthancExplorer, so Orthanc serves it in /plugins/explorer.js to every Explorer page).
 *
 * - No "Insecure setup" banner: Orthanc shows it because its own authentication is off, which is
 *   how the Gate runs (the Gate is the authentication).
 * - "Signed in as", a link home and a sign-out, for everyone.
 * - Admins keep every button. Anyone else sees only what their access level on the patient,
 *   study, series or instance shown allows; the gate decides every request regardless.
 * - "Open in OHIF" on a study's page, for whoever may view the study (OHIF at /ohif/ opens a study
 *   by its StudyInstanceUID, docs/ohif.md). A series' page has the Web Viewer plugin's own button.
 */
(function () {
  var ADMIN_ONLY = [  // admin-only whatever the grants (policies/routes.py)
    'a[href="#upload"]', 'a[href="#query-retrieve"]', 'a[href="#jobs"]', 'a[href="#plugins"]',
    '#patient-store', '#study-store', '#series-store', '#instance-store',
    '#patient-anonymize', '#study-anonymize', '#series-anonymize'];
  var ADMIN_ONLY_ADDED = [  // buttons other plugins add after the page is built
    '#stow-patient', '#stow-study', '#stow-series', '#stow-instance', '#open-dicomweb-client'];
  var NEEDS = {  // access level -> what it opens (policies/levels.py)
    download: ['#patient-archive', '#patient-media', '#study-archive', '#study-media',
               '#series-archive', '#series-media', '#instance-download-dicom'],
    full: ['#patient-delete', '#study-delete', '#series-delete', '#instance-delete']
  };
  var ORDER = ['view_only', 'download', 'annotate', 'report', 'share', 'full'];
  var KINDS = {patient: 'patients', study: 'studies', series: 'series', instance: 'instances'};

  function signIn() {
    window.location.replace('../gate/login?next=' +
      encodeURIComponent(window.location.pathname + window.location.search) + window.location.hash);
  }

  var css = '.warning-insecure{display:none!important}' +
    '.gate-bar{margin:0 0 .5em;text-align:right;font-size:.9em}' +
    '.gate-bar form{display:inline;margin-left:.5em}.gate-bar a{margin-left:.5em}';
  var me = null;
  $.ajax({
    url: '../gate/api/me', dataType: 'json', async: false, cache: false,
    success: function (answer) { me = answer; },
    error: function (xhr) { if (xhr.status === 401 || xhr.status === 403) { signIn(); } }
  });
  var isAdmin = me !== null && $.inArray('admin', me.roles) >= 0;
  if (me !== null && !isAdmin) {
    css += ADMIN_ONLY_ADDED.join(',') + '{display:none!important}' +
      // Explorer lists attachments as "Download NAME" once the page is shown.
      '.gate-no-download .patient-attachment,.gate-no-download .study-attachment,' +
      '.gate-no-download .series-attachment,.gate-no-download .instance-attachment{display:none!important}';
  }
  $('<style>').text(css).appendTo('head');
  if (me === null) {
    return;
  }

  function bar() {
    var b = $('<div>').addClass('gate-bar').append($('<span>').text('Signed in as ' + me.username));
    b.append($('<a>').attr('href', me.home).attr('data-ajax', 'false').attr('rel', 'external')
      .attr('id', 'gate-home').text('Home'));
    if (me.csrf_token) {
      b.append($('<form>').attr('method', 'post').attr('action', '../gate/logout').attr('data-ajax', 'false')
        .append($('<input>').attr('type', 'hidden').attr('name', 'csrf_token').val(me.csrf_token))
        .append($('<button>').attr('type', 'submit').attr('data-inline', 'true').attr('data-mini', 'true')
          .attr('id', 'gate-sign-out').text('Sign out')));
    }
    return b;
  }

  function item(selector, page) {
    var found = $(selector, page);
    return found.is('a') && found.closest('li').length ? found.closest('li') : found;
  }

  $(document).bind('pagebeforecreate', function (e) {
    var page = $(e.target);
    page.find('[data-role="content"]').first().prepend(bar());
    if (!isAdmin) {
      $.each(ADMIN_ONLY, function (_i, selector) { item(selector, page).remove(); });
    }
  });

  function levelOn(kind, uuid) {
    var level = null;
    $.ajax({
      url: '../gate/api/me', data: (function () { var q = {}; q[KINDS[kind]] = uuid; return q; })(),
      dataType: 'json', async: false, cache: false,
      success: function (answer) { level = answer.access ? answer.access.level : null; },
      error: function (xhr) { if (xhr.status === 401 || xhr.status === 403) { signIn(); } }
    });
    return level;
  }

  // Made once with the page (so jQuery Mobile styles it as a button and it is never doubled), where
  // the Web Viewer plugin puts its button on a series' page; shown once the study is known viewable.
  $('#study').live('pagebeforecreate', function () {
    $('<a>').attr({id: 'gate-open-ohif', href: '#', target: '_blank', 'data-role': 'button',
                   'data-icon': 'search', 'data-theme': 'e'})
      .text('Open in OHIF').hide().insertBefore($('#study-delete', this).closest('ul'));
  });

  function offerOhif(page, uuid, mayView) {
    var link = $('#gate-open-ohif', page).hide();
    if (!mayView) {
      return;
    }
    $.ajax({
      url: '../studies/' + encodeURIComponent(uuid), dataType: 'json', async: false, cache: false,
      success: function (study) {
        var uid = study.MainDicomTags && study.MainDicomTags.StudyInstanceUID;
        if (uid) {
          link.attr('href', '../ohif/viewer?StudyInstanceUIDs=' + encodeURIComponent(uid)).show();
        }
      }
    });
  }

  function showAllowed(page, held) {
    $('html').toggleClass('gate-no-download', held < $.inArray('download', ORDER));
    $.each(NEEDS, function (needed, selectors) {
      var allowed = held >= $.inArray(needed, ORDER);
      $.each(selectors, function (_i, selector) { item(selector, document).toggle(allowed); });
    });
    $('.switch-container', page).toggle(held >= $.inArray('full', ORDER));  // (un)protect a patient
    // A list left with nothing to offer ("Interact" for a view-only level) is not shown at all.
    $('ul[data-role="listview"]', page).each(function () {
      var items = $(this).children('li').not('[data-role="list-divider"]');
      if (items.length && !items.filter(function () { return $(this).css('display') !== 'none'; }).length) {
        $(this).hide();
      } else {
        $(this).show();
      }
    });
  }

  function shown(page, kind, uuid) {
    $(page).data('gate-uuid', uuid);
    // Admins hold everything; anyone else what /gate/api/me answers (-1: nothing).
    var held = isAdmin ? ORDER.length - 1 : $.inArray(levelOn(kind, uuid), ORDER);
    if (kind === 'study') {
      offerOhif(page, uuid, held >= $.inArray('view_only', ORDER));
    }
    if (!isAdmin) {
      showAllowed(page, held);
    }
  }

  $.each(KINDS, function (kind) {
    $('#' + kind).live('pagebeforeshow', function () {
      if ($.mobile.pageData && $.mobile.pageData.uuid) {
        shown(this, kind, $.mobile.pageData.uuid);
      }
    });
  });

  // jQuery Mobile does not show a page again for another resource of its kind (the back button,
  // "Before anonymization"): Explorer refreshes the page on hashchange, and so must we, or the
  // buttons and the OHIF link would still be those of the resource shown before. Bound once the
  // document is ready, so after jQuery Mobile's own handler has read the new hash.
  $(function () {
    $(window).bind('hashchange', function () {
      var data = $.mobile.pageData || {}, page = $.mobile.activePage;
      if (data.uuid && KINDS[data.active] && page && page.attr('id') === data.active &&
          page.data('gate-uuid') !== data.uuid) {
        shown(page, data.active, data.uuid);
      }
    });
  });
})();
