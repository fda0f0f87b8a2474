; Dropsight: per-user Windows installer (no admin rights).
;
;   makensis -WX installer.nsi                        packages dist\dropsight (make dist on Windows)
;   makensis -WX -DDIST_DIR=path\to\bundle -DOUTFILE=Setup.exe -DVERSION=0.3.0 installer.nsi
;   makensis -WX -DNSIS_TARGET=amd64-unicode ...      a 64-bit installer (needs amd64 stubs,
;                                                     as Debian's nsis package has)
;
; Without a Windows bundle (no dist\dropsight\dropsight.exe) this compiles a CHECK build from
; packaging\windows\check-stage into build\DropsightSetup-check.exe, so `makensis -WX
; installer.nsi` can be verified anywhere (CI on Linux); that installer refuses to run.
;
; Installs into %LOCALAPPDATA%\Programs\Dropsight; Start-menu shortcut; optional autostart of
; the tray via HKCU\Software\Microsoft\Windows\CurrentVersion\Run (value "Dropsight", the
; same one `dropsight autostart` manages); an Add/Remove Programs entry under HKCU.
; The uninstaller stops the running app first, removes what was installed, the shortcut, the
; Run value and the ARP entry, and keeps the user's sidecars, config, logs and cache (those
; live in %LOCALAPPDATA%\dropsight and beside the photos).
;
; Silent: `DropsightSetup.exe /S [/NOAUTOSTART] [/D=C:\path]`,
;         `"%LOCALAPPDATA%\Programs\Dropsight\uninstall.exe" /S`.

!ifdef NSIS_TARGET
  Target ${NSIS_TARGET}
!else
  Unicode true
!endif

!ifndef VERSION
  !define VERSION "0.3.0"
!endif

!ifndef DIST_DIR
  !if /FileExists "dist\dropsight\dropsight.exe"
    !define DIST_DIR "dist\dropsight"
  !else
    !echo "installer.nsi: no Windows bundle at dist\dropsight\dropsight.exe; compiling a CHECK build from packaging\windows\check-stage (it refuses to install)"
    !define DIST_DIR "packaging\windows\check-stage"
    !define CHECK_BUILD
  !endif
!endif

!ifndef OUTFILE
  !ifdef CHECK_BUILD
    !if ! /FileExists "build"
      !system 'mkdir build'
    !endif
    !define OUTFILE "build\DropsightSetup-check.exe"
  !else
    !define OUTFILE "dist\DropsightSetup.exe"
  !endif
!endif

!define APP_NAME "Dropsight"
!define CLI_EXE "dropsight.exe"
!define TRAY_EXE "dropsight-tray.exe"
!define RUN_KEY "Software\Microsoft\Windows\CurrentVersion\Run"
!define RUN_VALUE "Dropsight"
!define ARP_KEY "Software\Microsoft\Windows\CurrentVersion\Uninstall\Dropsight"

!include "MUI2.nsh"
!include "FileFunc.nsh"
!include "LogicLib.nsh"

Name "${APP_NAME}"
OutFile "${OUTFILE}"
InstallDir "$LOCALAPPDATA\Programs\${APP_NAME}"
InstallDirRegKey HKCU "${ARP_KEY}" "InstallLocation"
RequestExecutionLevel user
SetCompressor /SOLID lzma
ShowInstDetails show
ShowUninstDetails show
BrandingText "${APP_NAME} ${VERSION}"

VIProductVersion "${VERSION}.0"
VIAddVersionKey "ProductName" "${APP_NAME}"
VIAddVersionKey "ProductVersion" "${VERSION}"
VIAddVersionKey "FileVersion" "${VERSION}"
VIAddVersionKey "FileDescription" "${APP_NAME} installer"
VIAddVersionKey "LegalCopyright" "MIT licence"

!define MUI_ABORTWARNING
!define MUI_COMPONENTSPAGE_NODESC
!define MUI_FINISHPAGE_RUN "$INSTDIR\${TRAY_EXE}"
!define MUI_FINISHPAGE_RUN_TEXT "Start ${APP_NAME} now"

!insertmacro MUI_PAGE_COMPONENTS
!insertmacro MUI_PAGE_DIRECTORY
!insertmacro MUI_PAGE_INSTFILES
!insertmacro MUI_PAGE_FINISH
!insertmacro MUI_UNPAGE_CONFIRM
!insertmacro MUI_UNPAGE_INSTFILES
!insertmacro MUI_LANGUAGE "English"

; Stop a running Dropsight (tray and service) so its files can be replaced or removed.
; The tray first (force: it holds no state), then the service politely through its control
; API (`dropsight stop`: it finishes the sidecar in hand), waiting up to 15 s for it to exit,
; then by force whatever is left. A non-admin user cannot end another user's processes, so
; taskkill by image name only reaches this user's.
!macro STOP_APP UN
  Function ${UN}StopApp
    DetailPrint "Stopping ${APP_NAME} if it is running..."
    nsExec::ExecToLog '"$SYSDIR\taskkill.exe" /F /IM ${TRAY_EXE}'
    Pop $0
    ${If} ${FileExists} "$INSTDIR\${CLI_EXE}"
      nsExec::ExecToLog '"$INSTDIR\${CLI_EXE}" stop'
      Pop $0
      ${If} $0 == 0
        StrCpy $1 0
        ${Do}
          nsExec::ExecToStack 'cmd.exe /c tasklist /NH /FI "IMAGENAME eq ${CLI_EXE}" | find /I "${CLI_EXE}"'
          Pop $0 ; exit code: 0 while it is listed
          Pop $2 ; output
          ${IfThen} $0 != 0 ${|} ${Break} ${|}
          Sleep 250
          IntOp $1 $1 + 1
        ${LoopWhile} $1 < 60
      ${EndIf}
    ${EndIf}
    nsExec::ExecToLog '"$SYSDIR\taskkill.exe" /F /IM ${CLI_EXE}'
    Pop $0
    Sleep 500
  FunctionEnd
!macroend
!insertmacro STOP_APP ""
!insertmacro STOP_APP "un."

Section "${APP_NAME} (required)" SecApp
  SectionIn RO
  Call StopApp
  SetOutPath "$INSTDIR"
  ; An upgrade replaces the whole bundle: no stale module from an older version.
  RMDir /r "$INSTDIR\_internal"
  File /r "${DIST_DIR}\*"
  WriteUninstaller "$INSTDIR\uninstall.exe"

  CreateShortcut "$SMPROGRAMS\${APP_NAME}.lnk" "$INSTDIR\${TRAY_EXE}" "" "$INSTDIR\${TRAY_EXE}" 0

  WriteRegStr HKCU "${ARP_KEY}" "DisplayName" "${APP_NAME}"
  WriteRegStr HKCU "${ARP_KEY}" "DisplayVersion" "${VERSION}"
  WriteRegStr HKCU "${ARP_KEY}" "Publisher" "${APP_NAME}"
  WriteRegStr HKCU "${ARP_KEY}" "DisplayIcon" "$INSTDIR\${TRAY_EXE}"
  WriteRegStr HKCU "${ARP_KEY}" "InstallLocation" "$INSTDIR"
  WriteRegStr HKCU "${ARP_KEY}" "UninstallString" '"$INSTDIR\uninstall.exe"'
  WriteRegStr HKCU "${ARP_KEY}" "QuietUninstallString" '"$INSTDIR\uninstall.exe" /S'
  WriteRegDWORD HKCU "${ARP_KEY}" "NoModify" 1
  WriteRegDWORD HKCU "${ARP_KEY}" "NoRepair" 1
  ${GetSize} "$INSTDIR" "/S=0K" $0 $1 $2
  IntFmt $0 "0x%08X" $0
  WriteRegDWORD HKCU "${ARP_KEY}" "EstimatedSize" "$0"
SectionEnd

Section "Start ${APP_NAME} when I sign in" SecAutostart
  WriteRegStr HKCU "${RUN_KEY}" "${RUN_VALUE}" '"$INSTDIR\${TRAY_EXE}"'
SectionEnd

Section "-autostart off"
  ; Unticked on a re-install: remove a Run value an earlier install wrote.
  ${IfNot} ${SectionIsSelected} ${SecAutostart}
    DeleteRegValue HKCU "${RUN_KEY}" "${RUN_VALUE}"
  ${EndIf}
SectionEnd

Section "Uninstall"
  Call un.StopApp
  DeleteRegValue HKCU "${RUN_KEY}" "${RUN_VALUE}"
  Delete "$SMPROGRAMS\${APP_NAME}.lnk"

  ; Only what the installer put here: a user's own files in $INSTDIR (for example VGG16
  ; weights in $INSTDIR\models) are left alone, and so the folder then stays.
  Delete "$INSTDIR\${CLI_EXE}"
  Delete "$INSTDIR\${TRAY_EXE}"
  RMDir /r "$INSTDIR\_internal"
  Delete "$INSTDIR\uninstall.exe"
  RMDir "$INSTDIR"

  DeleteRegKey HKCU "${ARP_KEY}"
  ; Config, logs and cache (%LOCALAPPDATA%\dropsight) and the sidecars beside the photos
  ; are the user's: kept.
SectionEnd

; After the sections: it refers to their indexes.
Function .onInit
  !ifdef CHECK_BUILD
    MessageBox MB_ICONSTOP "This is a compile-check build of the ${APP_NAME} installer; it carries no application." /SD IDOK
    Abort
  !endif
  ; /NOAUTOSTART on the command line (e.g. with /S) leaves the autostart component off.
  ${GetParameters} $R0
  ClearErrors
  ${GetOptions} $R0 "/NOAUTOSTART" $R1
  ${IfNot} ${Errors}
    SectionSetFlags ${SecAutostart} 0
  ${EndIf}
FunctionEnd
